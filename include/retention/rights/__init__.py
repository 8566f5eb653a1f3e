"""Data-subject rights: finding a person's rows, requests and their deadlines, erasure, exports, rectification."""
