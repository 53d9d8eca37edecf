from avatarlab.cli import main

main()
