from twinledger.cli.main import main

main()
