"""avatarlab.datasets"""
