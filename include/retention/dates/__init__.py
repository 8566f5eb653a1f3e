"""Calendar periods, instants, and date arithmetic in SQL: what every rule about time stands on."""
