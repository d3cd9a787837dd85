package embedded

import (
	_ "github.com/centrifugal/centrifuge"
	_ "github.com/gin-instant/instant"
	_ "github.com/golang-jwt/jwt/v5"
)
