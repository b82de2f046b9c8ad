"""--modbus-reject against a real Modbus TCP server (pymodbus) standing in for the PLC."""

import json

from clitools import jsonl_rows, one_line_error, run_cli, free_port
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
