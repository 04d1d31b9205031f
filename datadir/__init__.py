"""The dataset directory (DESIGN.md §2), the contract every part of gazelab writes and reads.

The bottom package: numpy, pandas and OpenCV only, no other gazelab package. The only code that
spells the directory's paths (`layout`), reads and writes its pairs table (`dataset`), its maps
(`maps`) and a pair's files (`writer`), and checks it (`validation`).
"""
from datadir.dataset import Dataset
from datadir.layout import (IMAGE_SUFFIXES, KINDS, MAP_SUFFIXES, SIDES, SUBDIRS, find_images, is_dataset,
                            relative_path, saliency_folders)
from datadir.maps import check_density, check_map, load_map, save_map, to_density
from datadir.schema import EDIT_TYPES, PAIR_COLUMNS, SOURCES, SPLITS, Problem
from datadir.writer import PairWriter

__all__ = ["Dataset", "PairWriter", "Problem", "find_images", "is_dataset", "saliency_folders", "relative_path", "load_map",
           "save_map", "to_density", "check_map", "check_density", "IMAGE_SUFFIXES", "MAP_SUFFIXES", "KINDS",
           "SIDES", "SUBDIRS", "PAIR_COLUMNS", "SPLITS", "SOURCES", "EDIT_TYPES"]
