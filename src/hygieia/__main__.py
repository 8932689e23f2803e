from hygieia.client.cli import main

main()
