"""A remote control for the sandbox's vehicle, written against the paho-mqtt
1.x API the book uses (Hands-On MQTT Programming with Python, chapter 5):
a will {"CMD": "PARK_IN_SAFE_PLACE"} retained at QoS 2 on the commands
topic, commands published at QoS 2, answers read on executedcommands.

usage: remote_control.py PORT [--die]
Prints each answer's payload on a line. With --die it then ends without
DISCONNECT (the socket just closes), so the broker publishes the will.
"""
import json
import os
import sys
import time

import paho.mqtt.client as mqtt

port = int(sys.argv[1])
die = "--die" in sys.argv[2:]
commands_topic = "vehicles/vehiclepi01/commands"
executed_topic = "vehicles/vehiclepi01/executedcommands"
sequence = [
    ("SET_MAX_SPEED", "MPH", 30),
    ("SET_MIN_SPEED", "MPH", 8),
    ("LOCK_DOORS", None, None),
    ("TURN_ON_ENGINE", None, None),
    ("ROTATE_RIGHT", "DEGREES", 15),
    ("ACCELERATE", None, None),
    ("ROTATE_RIGHT", "DEGREES", 25),
    ("ACCELERATE", None, None),
    ("ROTATE_LEFT", "DEGREES", 15),
    ("ACCELERATE", None, None),
    ("TURN_OFF_ENGINE", None, None),
]
answers = []
subscribed = []


def message(cmd, key=None, value=None):
    body = {"CMD": cmd}
    if key:
        body[key] = value
    return json.dumps(body)


def on_connect(client, userdata, flags, rc):
    if rc != mqtt.CONNACK_ACCEPTED:
        sys.exit("connect refused: " + mqtt.connack_string(rc))
    client.subscribe(executed_topic, qos=2)


def on_subscribe(client, userdata, mid, granted_qos):
    subscribed.append(granted_qos[0])


def on_message(client, userdata, msg):
    if msg.topic == executed_topic:
        answers.append(msg.payload.decode())
        print(msg.payload.decode(), flush=True)


if hasattr(mqtt, "CallbackAPIVersion"):
    # paho-mqtt 2.x: keep the 1.x callbacks the book uses.
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION1, protocol=mqtt.MQTTv311)
else:
    client = mqtt.Client(protocol=mqtt.MQTTv311)
client.on_connect = on_connect
client.on_subscribe = on_subscribe
client.on_message = on_message
client.will_set(topic=commands_topic, payload=message("PARK_IN_SAFE_PLACE"), qos=2, retain=True)
client.connect(host="127.0.0.1", port=port, keepalive=60)
client.loop_start()
deadline = time.time() + 10
while not subscribed and time.time() < deadline:
    time.sleep(0.01)
if not subscribed:
    sys.exit("no SUBACK")
for cmd, key, value in sequence:
    info = client.publish(topic=commands_topic, payload=message(cmd, key, value), qos=2)
    info.wait_for_publish()
while len(answers) < len(sequence) and time.time() < deadline:
    time.sleep(0.01)
if len(answers) < len(sequence):
    sys.exit("only %d answers" % len(answers))
if die:
    # No DISCONNECT: the process ends and the OS closes the socket.
    os._exit(0)
client.disconnect()
client.loop_stop()
