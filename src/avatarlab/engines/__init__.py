"""avatarlab.engines"""
