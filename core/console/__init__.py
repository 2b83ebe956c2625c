"""Server consoles: one-time tokens, the websocket relay between a browser (or climc) and the
host agent's outbound connection, and the noVNC page (issue 17).

    routes.py  user routes (/servers/<id>/vnc, Nova's remote-consoles, Cloudpods' webconsole,
               the console websocket and page) and the agent's websocket
    tokens.py  issue / redeem console tokens (stored hashed in ``console_sessions``)
    relay.py   pairs the two websockets of a session inside one replica and pumps bytes
"""
