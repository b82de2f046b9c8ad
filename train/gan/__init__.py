"""A mask-conditioned defect GAN: more labelled defect images from the few real ones a line has.

data.py      the real defects of one kind (image + mask), checked, and their patches
networks.py  generator G(z, mask, background) → defect layer; discriminator D(patch, mask)
compose.py   masks from the real ones under random affine moves; soft-alpha compositing
diffaug.py   differentiable augmentation for D (few-shot GANs overfit without it)
train.py     the training loop, sample grids, checkpoint
quality.py   mode-collapse check, kernel/Fréchet distance and nearest-neighbour copy check
synth.py     a trained run → labelled images + masks in the MVTec layout
"""
