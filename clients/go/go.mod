module ogproxy.dev/ogsign

go 1.19
