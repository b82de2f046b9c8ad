"""--sensor modbus://: polling a real pymodbus server that is stopped and started again mid-run."""

from __future__ import annotations

import threading
import time

import numpy as np

from clitools import free_port, one_line_error, run_cli
from edge_line.modbus_source import ModbusSource
from edge_runtime.model import EdgeModel
from edge_runtime.sensor_pipeline import run_sensor_pipeline
from peers import ModbusPlc
from sensor_models import anomaly_model


def test_plc_that_goes_away_gives_an_outage_and_a_gap_never_invented_samples(tmp_path):
    reads = [0]

    def live_block(offset, count, registers):  # each read returns the next sample: 1, 2, 3 ... (x 1, 2, 3)
        reads[0] += 1
        registers[offset:offset + 3] = [reads[0], 2 * reads[0], 3 * reads[0]]

    plc = ModbusPlc(on_read=live_block)
    model = EdgeModel(anomaly_model(tmp_path / "m.onnx", window=10, stride=5, threshold=0.5))
    source = ModbusSource.from_spec(f"modbus://127.0.0.1:{plc.port}?start=10&count=3&rate=50&scale=0.01",
                                    model.channels)
    records, stop = [], threading.Event()
    runner = threading.Thread(target=lambda: records.append(run_sensor_pipeline(
        source, model, [lambda record, frame=None: records.append(record)], stop=stop)))
    runner.start()
    try:
        time.sleep(1.0)
        plc.close()
        time.sleep(1.0)
        plc = ModbusPlc(port=plc.port, on_read=live_block)
        deadline = time.monotonic() + 10
        while not any(r.get("type") == "outage" for r in records[:-1] if isinstance(r, dict)):
            assert time.monotonic() < deadline, "the source never came back"
            time.sleep(0.05)
        time.sleep(0.6)
    finally:
        stop.set()
        runner.join(timeout=10)
        plc.close()
    summary, records = records[-1], records[:-1]
    verdicts = [r for r in records if r["type"] == "verdict"]
    gaps = [r for r in records if r["type"] == "gap"]
    outages = [r for r in records if r["type"] == "outage"]
    assert len(outages) == 1 and outages[0]["seconds"] >= 0.8
    assert len(gaps) == 1 and gaps[0]["missed"] == gaps[0]["resumed_sample"] - gaps[0]["after_sample"] - 1
    assert gaps[0]["missed"] >= 40  # ~1 s at 50 Hz without a poll
    assert summary.samples["problems"] == {"plc_lost": 1}
    assert [v["window_id"] for v in verdicts] == list(range(len(verdicts)))
    # no window spans the outage, and every sample in a window is a real, distinct read
    assert not any(v["first_sample"] <= gaps[0]["after_sample"] < v["last_sample"] for v in verdicts)
    before = [v for v in verdicts if v["last_sample"] <= gaps[0]["after_sample"]]
    after = [v for v in verdicts if v["first_sample"] >= gaps[0]["resumed_sample"]]
    assert len(before) >= 5 and len(after) >= 2 and len(before) + len(after) == len(verdicts)
    assert summary.samples["taken"] <= reads[0]  # never more samples than the PLC answered
    scores = np.array([v["score"] for v in verdicts])
    assert np.all(np.diff(scores[:len(before)]) > 0)  # the rising register values, in order, none repeated
    assert {"good", "defect"} <= {v["verdict"] for v in verdicts}


def test_register_count_that_does_not_match_the_model_is_one_line(tmp_path):
    model = anomaly_model(tmp_path / "m.onnx", window=10, stride=5)
    line = one_line_error(run_cli("edge-run", "--sensor", f"modbus://127.0.0.1:{free_port()}?start=0&count=2",
                                  "--model", str(model)))
    assert "count=2" in line and "3 channels" in line
    line = one_line_error(run_cli("edge-run", "--sensor", f"modbus://127.0.0.1:{free_port()}?count=3&rate=20",
                                  "--model", str(model)))
    assert "refuses connections" in line
