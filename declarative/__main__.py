from declarative.cli import main

main()
