"""A callback for the real `fedora-messaging consume` CLI, for relflow's tests.

    fedora-messaging --conf CONF consume --callback-file fm_consume.py:callback ...

Prints each message fedora-messaging accepted (it has already decoded the
body and read the schema and severity headers) as one JSON line: its id
(the AMQP message_id), topic, headers, severity and body.
"""
import json


def callback(message):
    print(
        json.dumps(
            {
                "id": message.id,
                "topic": message.topic,
                "severity": message.severity,
                "headers": message._headers,
                "body": message.body,
            },
            default=str,
        ),
        flush=True,
    )
