"""The Button's server, apart from the three modules the design card names.

The top level (websocketserver.py, Button.py, Repository.py) imports this package; this
package never imports them. The way of every change: a press source (Button.py, the API,
MQTT, the round schedule) calls the store (``store.Store``); the store commits and tells
``changes.Changes``; on the IOLoop each listener hears it in turn (the feed of sockets,
metrics, webhooks, MQTT).
"""
