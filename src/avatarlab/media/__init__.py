"""avatarlab.media"""
