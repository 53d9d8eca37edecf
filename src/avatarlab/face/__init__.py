"""avatarlab.face"""
