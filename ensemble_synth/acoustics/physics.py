"""Physical constants shared by the acoustics modules."""

SPEED_OF_SOUND = 343.0  # m/s, as pyroomacoustics' default at about 20 C
