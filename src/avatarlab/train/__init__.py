"""avatarlab.train"""
