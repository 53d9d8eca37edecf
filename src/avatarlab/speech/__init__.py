"""avatarlab.speech"""
