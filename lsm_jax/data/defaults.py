"""The training-data config (`config.data`) with its defaults: plain ml_collections, so loading a
training config imports neither grain nor the image stack."""

from __future__ import annotations

import ml_collections

SOURCES = ("embedded", "paired", "hr_only", "records")


def default_data_config() -> ml_collections.ConfigDict:
    """Data config with its defaults (``source='embedded'``); see the README for each field."""
    c = ml_collections.ConfigDict()
    c.source = "embedded"  # 'embedded' | 'paired' | 'hr_only' | 'records'
    c.hr_dir = ""  # HR folder ('paired', 'hr_only')
    c.lr_dir = ""  # LR folder for 'paired'; '{scale}' is replaced, e.g. 'DIV2K_train_LR_bicubic/X{scale}'
    c.filename_tmpl = "{}x{scale}"  # LR stem from the HR stem (BasicSR's filename_tmpl; '{}x2' works too)
    c.record_dirs = ()  # 'records': make_dataset folders, e.g. ('DIV2K_rec', 'Flickr2K_rec') for DF2K
    c.record_weights = ()  # 'records': share of draws per folder (default: its share of the sub-images)
    c.gt_size = 192  # HR patch side; must be a multiple of the scale (192 works for x2, x3, x4)
    c.use_hflip = True
    c.use_rot = True  # vflip and HW-transpose
    c.dataset_enlarge_ratio = 1  # BasicSR: one epoch visits every image this many times
    c.num_workers = 0  # worker processes (0: in the calling process)
    c.check_files = False  # decode every file and check every pair before starting
    c.read_threads = 2  # decoding threads per process
    c.worker_buffer_size = 2  # batches each worker prepares ahead
    return c
