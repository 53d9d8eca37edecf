"""avatarlab.metrics"""
