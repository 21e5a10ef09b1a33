"""The desktop agent (SPEC §1, §6): Microphone Sync, clean-up at start, client-side Teams.

`presencebridge agent --server URL --token T` connects to the hub's agent stream,
reports which whitelisted programs hold the microphone (one detector per
platform, behind `detect.MicrophoneDetector`) and, when the user's group asks for
it, runs the user's Teams sync with the user's own sign-in (`teams`).
"""
