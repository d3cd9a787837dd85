package embedded

import (
	_ "github.com/centrifugal/centrifuge-go"
	_ "github.com/jackc/pgx/v5/stdlib"
	_ "github.com/redis/go-redis/v9"
)
