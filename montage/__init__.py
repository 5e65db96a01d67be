"""montage."""
