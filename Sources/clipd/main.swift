import ArgumentParser
ClipdCommand.main()
