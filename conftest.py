"""Root pytest configuration: skip doctest collection of optional backends whose package is missing."""

import importlib.util

collect_ignore_glob = [] if importlib.util.find_spec("triton") else ["src/camwarp/warp/triton/*"]
