"""Maps -> numbers: the summary a clinician reads (scores, labels, area) and the metrics of evaluation."""
