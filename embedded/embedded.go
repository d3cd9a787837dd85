package embedded

import (
	_ "github.com/centrifugal/centrifuge"
	_ "github.com/golang-jwt/jwt/v5"
	_ "github.com/gin-instant/instant"
)
