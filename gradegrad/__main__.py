from gradegrad.cli import main

main()
