from declarative.entry import main

main()
