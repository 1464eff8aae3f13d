from gradegrad.entry import main

main()
