"""Outputs to the line's own systems: MQTT (plant broker) and Modbus TCP (the PLC's reject gate).

Kept out of `edge_runtime` so the runtime floor stays small: these need the
`line` extra (`pip install 'lineside[line]'`) and load only when their flag is used.
"""
