from ocadm.main import main

main()
