module modeldeploy.dev/mdroute

go 1.24
