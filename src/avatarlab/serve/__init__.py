"""avatarlab.serve"""
