"""Fuzzing the frame path and the config loader: never a crash, always a flag or a clear error."""

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from edge_runtime.errors import LinesideError
from edge_runtime.frame_checks import FrameChecker, frame_problem
from edge_runtime.line_config import load_line_config
from edge_runtime.preprocess import prepare_image

dtypes = st.sampled_from([np.uint8, np.uint16, np.float32, np.float64, np.int8, np.bool_])
shapes = st.one_of(
    st.tuples(st.integers(0, 40), st.integers(0, 40)),
    st.tuples(st.integers(0, 40), st.integers(0, 40), st.integers(0, 6)),
    st.tuples(st.integers(0, 3), st.integers(0, 3), st.integers(0, 3), st.integers(0, 3)),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(image=st.one_of(arrays(dtypes, shapes, elements=None), st.none(), st.text(max_size=5)))
def test_any_frame_is_flagged_or_prepared(image):
    problem = frame_problem(image)
    if problem is None:
        FrameChecker().before(image)
        out = prepare_image(image, (16, 16))
        assert out.shape == (16, 16, 3) and out.dtype == np.uint8
    else:
        assert problem in ("not_an_image", "bad_dtype", "bad_shape", "empty", "too_small")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(max_size=200))
def test_any_config_text_loads_or_is_a_clear_error(tmp_path, text):
    path = tmp_path / "line.yaml"
    path.write_text(text)
    try:
        values = load_line_config(path, {"source", "model", "roi", "threads", "max_age_ms"})
    except LinesideError as exc:
        assert str(exc).startswith("--config")
    else:
        assert set(values) <= {"source", "model", "roi", "threads", "max_age_ms"}


def test_garbage_frames_from_a_source_become_flagged_records(artifacts):
    import time

    from edge_runtime.model import EdgeModel
    from edge_runtime.pipeline import run_pipeline
    from edge_runtime.sources import Frame

    good = np.random.default_rng(0).integers(0, 256, (128, 128, 3), dtype=np.uint8)
    images = [np.zeros((64, 64, 3), np.float32), np.zeros((2, 2, 2, 2), np.uint8), np.zeros((0, 5), np.uint8), good]

    class ListSource:
        live, name = False, "test"

        def __init__(self):
            self.items = list(images)

        def open(self):
            pass

        def read(self):
            if not self.items:
                return None
            return Frame(self.items.pop(0), 4 - len(self.items) - 1, time.time(), time.perf_counter(), self.name)

        def close(self):
            pass

    records = []
    summary = run_pipeline(ListSource(), EdgeModel(artifacts / "model.int8.onnx"), [lambda r, f=None: records.append(r)])
    verdicts = [r for r in records if r["type"] == "verdict"]
    assert [r["flags"] for r in verdicts[:3]] == [["bad_dtype"], ["bad_shape"], ["empty"]]
    assert all(r["verdict"] == "invalid" for r in verdicts[:3]) and verdicts[3]["verdict"] != "invalid"
    assert summary.invalid == 3
