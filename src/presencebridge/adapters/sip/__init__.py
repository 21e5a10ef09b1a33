"""SIP connectors (issue 13, docs/pbx.md): `sip-dialog` reads call states from a PBX
through dialog-event subscriptions (`watcher`), `sip-presence` PUBLISHes presence to a
SIP presence server (`publisher`). Both use one small user agent (`ua`, `transport`,
`message`, `digest`); message and header parsing is the `sipmessage` package's.
"""
