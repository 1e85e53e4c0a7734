"""Facts about CIFAR-10 that more than one stage uses, with no imports: the models standardise inputs
with its statistics and the augmentation fills erased regions with its mean."""

# Images are 32x32 RGB: the data's checks, the models' inputs and their token counts share it.
IMAGE_SIZE = 32

# Per-channel mean and standard deviation of the training images, as fractions of 255 (the official
# training script's values).
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2471, 0.2435, 0.2616)
