"""--modbus-reject against a real Modbus TCP server (pymodbus) standing in for the PLC."""

import json

import pytest

from clitools import busy_port, free_port, jsonl_rows, one_line_error, run_cli
from peers import ModbusPlc


def test_each_reject_pulses_the_coil_with_the_frame_id_in_registers(demo_data, artifacts, tmp_path):
    plc = ModbusPlc()
    try:
        log = tmp_path / "v.jsonl"
        proc = run_cli("edge-run", "--source", str(demo_data / "brick" / "test" / "hole"), "--model",
                       str(artifacts / "model.int8.onnx"), "--jsonl", str(log), "--quiet", "--frozen-frames", "0",
                       "--modbus-reject", f"127.0.0.1:{plc.port}/16", "--modbus-pulse-ms", "30",
                       "--modbus-id-register", "100")
        assert proc.returncode == 0, proc.stderr
        rejects = [r for r in jsonl_rows(log) if r["type"] == "verdict" and r["verdict"] == "defect"]
        assert len(rejects) >= 6
        coil = plc.coil_writes()
        assert [on for _, _, on in coil] == [True, False] * len(rejects)
        assert {address for _, address, _ in coil} == {16}
        pulses = [off_t - on_t for (on_t, _, _), (off_t, _, _) in zip(coil[::2], coil[1::2])]
        assert min(pulses) >= 0.025  # the coil stayed on for the pulse
        ids = [v for _, kind, a, v in plc.writes if kind == "register" and a == 100]
        assert [hi << 16 | lo for hi, lo in ids] == [r["frame_id"] for r in rejects]
        assert json.loads(proc.stdout.splitlines()[-1])["outputs"]["modbus"]["delivered"] == len(rejects)
    finally:
        plc.close()


def test_refusing_plc_keeps_inspecting_or_stops_the_line_when_told(demo_data, artifacts, tmp_path):
    dead = f"127.0.0.1:{free_port()}/16"
    args = ("edge-run", "--source", str(demo_data / "brick" / "test" / "hole"), "--model",
            str(artifacts / "model.int8.onnx"), "--quiet", "--frozen-frames", "0", "--modbus-reject", dead)
    going = run_cli(*args, "--jsonl", str(tmp_path / "v.jsonl"))
    assert going.returncode == 0 and "refuses connections" in going.stderr
    assert len(jsonl_rows(tmp_path / "v.jsonl")) >= 9  # every frame decided and recorded
    assert json.loads(going.stdout.splitlines()[-1])["outputs"]["modbus"]["failed"] >= 6
    line = one_line_error(run_cli(*args, "--output-failure", "stop"))
    assert "PLC refuses connections" in line and "Connection" not in line and "--output-failure stop" in line


def test_the_plc_can_poll_the_latest_decision_from_a_served_register_block(demo_data, artifacts, tmp_path):
    import subprocess
    import time

    from pymodbus.client import ModbusTcpClient

    from clitools import BIN, ROOT

    port = free_port()
    log = tmp_path / "v.jsonl"
    run = subprocess.Popen([str(BIN / "edge-run"), "--source", str(demo_data / "brick" / "test" / "hole"), "--loop",
                            "--model", str(artifacts / "model.int8.onnx"), "--frozen-frames", "0", "--quiet",
                            "--jsonl", str(log), "--modbus-serve", str(port)], cwd=ROOT,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    plc = ModbusTcpClient("127.0.0.1", port=port)
    try:
        deadline = time.monotonic() + 30
        while not plc.connect() and time.monotonic() < deadline:
            time.sleep(0.2)
        seen = []
        while len(seen) < 2 and time.monotonic() < deadline:
            answer = plc.read_holding_registers(0, count=7)
            assert not answer.isError(), answer
            if answer.registers[4] > 0:
                seen.append(answer.registers)
            time.sleep(0.3)
    finally:
        plc.close()
        run.terminate()
        out, err = run.communicate(timeout=30)
    assert run.returncode == 0, err
    first, later = seen
    assert later[4] > first[4]  # decisions keep counting while the PLC polls
    verdicts = [r for r in jsonl_rows(log) if r["type"] == "verdict"]
    decided = {r["frame_id"]: r for r in verdicts}
    frame_id = later[1] << 16 | later[2]
    assert frame_id in decided and later[0] == {"good": 1, "defect": 2, "invalid": 3}[decided[frame_id]["verdict"]]
    assert later[3] <= later[4] and later[6] < 5


def test_a_served_port_in_use_is_one_line(demo_data, artifacts):
    with busy_port() as port:
        proc = run_cli("edge-run", "--source", str(demo_data / "brick" / "test" / "good"), "--model",
                       str(artifacts / "model.int8.onnx"), "--modbus-serve", str(port))
    assert "cannot be served" in one_line_error(proc)


@pytest.mark.parametrize("target, expected", [(":502/16", "name the PLC's host"),
                                              ("127.0.0.1:70000/16", "port must be 1-65535"),
                                              ("127.0.0.1:502/99999", "coil 0-65535")])
def test_a_reject_target_that_cannot_be_is_one_line_before_the_line_starts(demo_data, artifacts, target, expected):
    proc = run_cli("edge-run", "--source", str(demo_data / "brick" / "test" / "good"), "--model",
                   str(artifacts / "model.int8.onnx"), "--modbus-reject", target)
    assert expected in one_line_error(proc)
