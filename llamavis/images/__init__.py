"""Where images come from and how one is prepared for upload."""
