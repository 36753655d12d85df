"""Answers "who is on call?" in chat."""

ROTATIONS = {"platform": ["judy", "ken", "liam"], "payments": ["dave", "erin", "frank"]}


def on_call(team: str, week: int) -> str:
    rotation = ROTATIONS[team]
    return rotation[week % len(rotation)]
