from idx.cli.main import main

main()
