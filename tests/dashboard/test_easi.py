"""EASI arithmetic against hand-computed values."""

from __future__ import annotations

import pytest

from dashboard.easi import (
    EasiResult,
    area_percent_range,
    area_score,
    compute_easi,
    prefill_intensities,
    region_score,
    region_weights,
    severity_band,
)

ALL3 = {"erythema": 3, "papulation": 3, "excoriation": 3, "lichenification": 3}


@pytest.mark.parametrize(
    "percent, expected",
    [(0, 0), (0.5, 1), (1, 1), (9, 1), (9.9, 1), (10, 2), (29, 2), (29.9, 2), (30, 3),
     (49, 3), (50, 4), (69, 4), (70, 5), (89, 5), (89.9, 5), (90, 6), (100, 6)],
)  # fmt: skip
def test_area_score_edges(percent, expected):
    assert area_score(percent) == expected


@pytest.mark.parametrize("score", range(7))
def test_area_score_round_trip(score):
    low, high = area_percent_range(score)
    assert area_score(low) == score
    assert area_score(high) == score


def test_area_percent_range_values():
    assert area_percent_range(0) == (0, 0)
    assert area_percent_range(2) == (10, 29)
    assert area_percent_range(6) == (90, 100)


@pytest.mark.parametrize(
    "age, expected",
    [(0, (0.2, 0.2, 0.3, 0.3)), (7, (0.2, 0.2, 0.3, 0.3)), (7.9, (0.2, 0.2, 0.3, 0.3)),
     (8, (0.1, 0.2, 0.3, 0.4)), (65, (0.1, 0.2, 0.3, 0.4))],
)  # fmt: skip
def test_region_weights_by_age(age, expected):
    w = region_weights(age)
    assert (w["head_neck"], w["upper_limbs"], w["trunk"], w["lower_limbs"]) == expected


def test_region_score_hand_computed():
    # (2 + 1.5 + 1 + 0.5) = 5; x area 3 x trunk 0.3 = 4.5
    s = region_score({"erythema": 2, "papulation": 1.5, "excoriation": 1, "lichenification": 0.5},
                     3, "trunk", age=34)  # fmt: skip
    assert s == pytest.approx(4.5)
    # child head/neck weight 0.2: 5 x 3 x 0.2 = 3.0
    assert region_score({"erythema": 2, "papulation": 1.5, "excoriation": 1,
                         "lichenification": 0.5}, 3, "head_neck", age=5) == pytest.approx(3.0)  # fmt: skip


def test_total_hand_computed_adult():
    result = compute_easi(
        {
            "head_neck": (
                {"erythema": 1, "papulation": 1, "excoriation": 0, "lichenification": 0},
                1,
            ),
            "trunk": (
                {"erythema": 2, "papulation": 1.5, "excoriation": 1, "lichenification": 0.5},
                3,
            ),
            "lower_limbs": (
                {"erythema": 2, "papulation": 2, "excoriation": 2, "lichenification": 2},
                4,
            ),
        },
        age=34,
    )
    # head 2 x 1 x 0.1 = 0.2; trunk 5 x 3 x 0.3 = 4.5; legs 8 x 4 x 0.4 = 12.8 -> 17.5
    assert result.regions["head_neck"].score == pytest.approx(0.2)
    assert result.regions["lower_limbs"].score == pytest.approx(12.8)
    assert result.total == pytest.approx(17.5)
    assert result.band == "moderate"
    assert result.age_group == "adult"
    assert "upper_limbs" not in result.regions


def test_total_child_and_maximum():
    everything = {r: (ALL3, 6) for r in ("head_neck", "upper_limbs", "trunk", "lower_limbs")}
    assert compute_easi(everything, age=30).total == pytest.approx(72)
    assert compute_easi(everything, age=3).total == pytest.approx(72)
    assert compute_easi(everything, age=3).band == "very severe"
    # one region differs by age: head/neck 12 x 6 x 0.2 = 14.4 for a child, 7.2 for an adult
    head = {"head_neck": (ALL3, 6)}
    assert compute_easi(head, age=7).total == pytest.approx(14.4)
    assert compute_easi(head, age=8).total == pytest.approx(7.2)


@pytest.mark.parametrize(
    "total, band",
    [(0, "clear"), (0.05, "almost clear"), (0.1, "almost clear"), (1.0, "almost clear"),
     (1.05, "mild"), (1.1, "mild"), (7.0, "mild"), (7.05, "moderate"), (7.1, "moderate"),
     (21.0, "moderate"), (21.05, "severe"), (50.0, "severe"), (50.05, "very severe"),
     (72, "very severe"), (7.000000001, "mild")],
)  # fmt: skip
def test_severity_bands_and_gaps(total, band):
    assert severity_band(total) == band


def test_floating_point_total_lands_in_right_band():
    # head 0.5 x 4 x 0.1 = 0.2, legs 8.5 x 2 x 0.4 = 6.8: in floats 7.000000000000001
    r = compute_easi({"head_neck": ({"erythema": 0.5}, 4),
                      "lower_limbs": ({"erythema": 3, "papulation": 3, "excoriation": 2,
                                       "lichenification": 0.5}, 2)},
                     age=40)  # fmt: skip
    assert sum(x.score for x in r.regions.values()) > 7.0  # the float noise is real
    assert r.total == 7.0
    assert r.band == "mild"


def test_to_dict_round_trip():
    r = compute_easi({"trunk": (ALL3, 2)}, age=10)
    again = EasiResult.from_dict(r.to_dict())
    assert again == r


def test_prefill_means_and_half_points():
    photos = [
        {"erythema": 1.9, "papulation": 0.7, "excoriation": 0.0, "lichenification": 2.9},
        {"erythema": 2.3, "papulation": 0.9, "excoriation": 0.2, "lichenification": 3.0},
    ]
    # means 2.1, 0.8, 0.1, 2.95 -> nearest half point 2.0, 1.0, 0.0, 3.0
    assert prefill_intensities(photos) == {
        "erythema": 2.0, "papulation": 1.0, "excoriation": 0.0, "lichenification": 3.0,
    }  # fmt: skip
    assert prefill_intensities([]) == dict.fromkeys(ALL3, 0.0)
    # aliases and unknown signs: "oedema" is papulation, "scaling" is not an EASI sign
    assert prefill_intensities([{"oedema": 1.4, "scaling": 3}])["papulation"] == 1.5


def test_prefill_from_a_wider_model_scale():
    # a 0..4 model: 4 -> 3, 2 -> 1.5, 1.4 -> 1.05 -> 1.0; EASI's 0..3 either way
    scores = [{"erythema": 4.0, "papulation": 2.0, "excoriation": 1.4, "lichenification": 0}]
    assert prefill_intensities(scores, max_score=4.0) == {
        "erythema": 3.0, "papulation": 1.5, "excoriation": 1.0, "lichenification": 0.0,
    }  # fmt: skip


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: area_score(-1), "between 0 and 100"),
        (lambda: area_score(101), "between 0 and 100"),
        (lambda: area_percent_range(7), "integer 0..6"),
        (lambda: area_percent_range(2.5), "integer 0..6"),
        (lambda: region_weights(-1), "from 0 to 130"),  # the model's age rule
        (lambda: region_weights(200), "from 0 to 130"),
        (lambda: region_weights("old"), "from 0 to 130"),
        (lambda: region_score(ALL3, 2, "scalp", 30), "head_neck, upper_limbs, trunk, lower_limbs"),
        (lambda: region_score({"erythema": 4}, 2, "trunk", 30), "between 0 and 3"),
        (lambda: region_score({"erythema": -0.5}, 2, "trunk", 30), "between 0 and 3"),
        (lambda: region_score({"itch": 1}, 2, "trunk", 30), "allowed: erythema, papulation"),
        (lambda: compute_easi({"feet": (ALL3, 1)}, 30), "allowed: head_neck"),
        (lambda: severity_band(73), "between 0 and 72"),
        (lambda: prefill_intensities([], step=0), "step must be positive"),
        (lambda: prefill_intensities([], max_score=0), "max_score must be positive"),
    ],
)
def test_ill_args(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_unknown_age_uses_the_8_and_over_weights_and_says_so():
    head = {"head_neck": (ALL3, 6)}  # 12 x 6 x weight: 7.2 (8 and over) or 14.4 (under 8)
    unknown = compute_easi(head, age=None)
    assert unknown.total == pytest.approx(7.2) and unknown.age_group == "adult"
    assert unknown.age is None and unknown.age_assumed
    assert "8 years and over" in unknown.weights_note and "age unknown" in unknown.weights_note
    assert region_weights(None) == region_weights(30)
    known = compute_easi(head, age=5)
    assert not known.age_assumed and known.weights_note == "weights for under 8 years"
    assert EasiResult.from_dict(unknown.to_dict()) == unknown  # JSON keeps the unknown age
