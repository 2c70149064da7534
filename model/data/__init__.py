"""Files -> arrays: the dataset contract, safe image reading, splits, augmentation, the training set.

The bottom layer with `model.errors`: it imports no other dermsev package.
"""
