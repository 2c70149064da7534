"""The network, one piece per file: the U-Net with its heads, MIL pooling, channel mixing, the
tabular (age/sex) branch, and the model directory that saves and rebuilds it."""
