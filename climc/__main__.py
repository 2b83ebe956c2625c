from climc.main import main

main()
