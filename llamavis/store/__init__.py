"""What llamavis keeps on disk: its folders, keys and the result cache."""
