from idx.cli.main import main

if __name__ == "__main__":  # imported again by spawned processes: only a run starts the CLI
    main()
