"""Outputs for people who caption datasets: caption files beside the images, a manifest,
the caption written into the image's own metadata. No network, no terminal."""
