"""Acoustics: stage seating, rooms, microphones, room impulse responses, capture and plans.

seating (players and their radiation) -> rooms (shoebox, RT60 <-> absorption) -> mics
(arrays, spots, mix-down) -> scene (all three resolved together) -> rir_simulation
(image sources + statistical tail) -> rir_cache -> capture (dry stems -> images).
"""
