#!/usr/bin/env python3
"""Writes the NMEA fixtures in this folder. Run it from anywhere; it writes
next to itself. The sentences follow what u-blox (NEO-6M, NEO-M8N), MediaTek
and SiRF modules print, with checksums computed here rather than typed."""

import datetime
import os
import random

HERE = os.path.dirname(os.path.abspath(__file__))
KNOT_MPS = 1852.0 / 3600.0


def cs(body):
    x = 0
    for ch in body.encode("ascii"):
        x ^= ch
    return x


def s(body):
    """One sentence with its checksum and CRLF."""
    return "$%s*%02X\r\n" % (body, cs(body))


def bad(body, wrong_by=0x01):
    """A sentence whose checksum does not match its text (a flipped bit)."""
    return "$%s*%02X\r\n" % (body, cs(body) ^ wrong_by)


def ddmm(value, lon):
    hemi = ("E" if value >= 0 else "W") if lon else ("N" if value >= 0 else "S")
    value = abs(value)
    deg = int(value)
    minutes = (value - deg) * 60.0
    if lon:
        return "%03d%08.5f" % (deg, minutes), hemi
    return "%02d%08.5f" % (deg, minutes), hemi


def hms(t):
    return t.strftime("%H%M%S.00")


def dmy(t):
    return t.strftime("%d%m%y")


GPS_SV = [(5, 41, 112, 38), (13, 62, 287, 44), (15, 22, 63, 35), (18, 55, 180, 41),
          (20, 30, 245, 33), (29, 18, 318, 29), (24, 8, 140, 0), (10, 3, 20, 0),
          (23, 12, 200, 22), (26, 5, 75, 0), (27, 44, 10, 36)]
GLO_SV = [(67, 35, 95, 31), (68, 60, 190, 38), (77, 25, 300, 27), (78, 9, 345, 0)]


def gsv(talker, sats):
    out = []
    groups = [sats[i:i + 4] for i in range(0, len(sats), 4)]
    for n, group in enumerate(groups, 1):
        fields = ["%s%s" % (talker, "GSV"), str(len(groups)), str(n), "%02d" % len(sats)]
        for prn, el, az, snr in group:
            fields += ["%02d" % prn, "%02d" % el, "%03d" % az, "%02d" % snr if snr else ""]
        out.append(s(",".join(fields)))
    return out


def m8_fix_epoch(t, lat, lon, speed_kn, course, alt, sats=9, hdop=0.92):
    la, ns = ddmm(lat, False)
    lo, ew = ddmm(lon, True)
    kmh = speed_kn * 1.852
    out = [
        s("GNRMC,%s,A,%s,%s,%s,%s,%.3f,%.2f,%s,,,A" % (hms(t), la, ns, lo, ew, speed_kn, course, dmy(t))),
        s("GNVTG,%.2f,T,,M,%.3f,N,%.3f,K,A" % (course, speed_kn, kmh)),
        s("GNGGA,%s,%s,%s,%s,%s,1,%02d,%.2f,%.1f,M,39.9,M,," % (hms(t), la, ns, lo, ew, sats, hdop, alt)),
        s("GNGSA,A,3,05,13,15,18,20,29,,,,,,,1.65,%.2f,1.37" % hdop),
        s("GNGSA,A,3,67,68,77,,,,,,,,,,1.65,%.2f,1.37" % hdop),
    ]
    out += gsv("GP", GPS_SV) + gsv("GL", GLO_SV)
    out.append(s("GNGLL,%s,%s,%s,%s,%s,A,A" % (la, ns, lo, ew, hms(t))))
    return out


def m8_lost_epoch(t):
    """u-blox M8 without dead reckoning after losing every satellite: time
    keeps running from its own clock, position fields are empty."""
    out = [
        s("GNRMC,%s,V,,,,,,,%s,,,N" % (hms(t), dmy(t))),
        s("GNVTG,,,,,,,,,N"),
        s("GNGGA,%s,,,,,0,00,99.99,,,,,," % hms(t)),
        s("GNGSA,A,1,,,,,,,,,,,,,99.99,99.99,99.99"),
        s("GNGSA,A,1,,,,,,,,,,,,,99.99,99.99,99.99"),
        s("GPGSV,1,1,00"),
        s("GLGSV,1,1,00"),
        s("GNGLL,,,,,%s,V,N" % hms(t)),
    ]
    return out


def write(name, lines):
    with open(os.path.join(HERE, name), "w", newline="") as f:
        f.write("".join(lines))


START = datetime.datetime(2026, 12, 4, 10, 15, 0)
LAT0, LON0 = 52.520008, 13.404954
SPEED_KN = 27.0  # 13.89 m/s, 50 km/h
COURSE = 87.5


def position(k):
    """Where the car is k seconds after START, driving east."""
    metres = k * SPEED_KN * KNOT_MPS
    return LAT0, LON0 + metres / 67_800.0  # metres per degree of longitude near 52.5 N


# NEO-6M cold start: nothing known, then time and date from the first
# satellite before any position.
cold = []
for k in range(3):
    cold += [
        s("GPRMC,,V,,,,,,,,,,N"),
        s("GPVTG,,,,,,,,,N"),
        s("GPGGA,,,,,,0,00,99.99,,,,,,"),
        s("GPGSA,A,1,,,,,,,,,,,,,99.99,99.99,99.99"),
        s("GPGSV,1,1,00"),
        s("GPGLL,,,,,,V,N"),
    ]
cold.insert(0, s("GPTXT,01,01,02,u-blox ag - www.u-blox.com"))
for k in range(2):
    t = START + datetime.timedelta(seconds=k)
    cold += [
        s("GPRMC,%s,V,,,,,,,%s,,,N" % (hms(t), dmy(t))),
        s("GPVTG,,,,,,,,,N"),
        s("GPGGA,%s,,,,,0,03,25.40,,,,,," % hms(t)),
        s("GPGSA,A,1,,,,,,,,,,,,,99.99,99.99,99.99"),
    ] + gsv("GP", GPS_SV[:6]) + [s("GPGLL,,,,,%s,V,N" % hms(t))]
write("cold_start.nmea", cold)

first = []
for k in range(10, 15):
    lat, lon = position(k)
    first += m8_fix_epoch(START + datetime.timedelta(seconds=k), lat, lon, SPEED_KN, COURSE, 34.5)
write("first_fix.nmea", first)
lat, lon = position(14)
print("first_fix last epoch: lat %.7f lon %.7f" % (lat, lon))

loss = []
for k in range(20, 22):
    lat, lon = position(k)
    loss += m8_fix_epoch(START + datetime.timedelta(seconds=k), lat, lon, SPEED_KN, COURSE, 35.0)
for k in range(22, 26):
    loss += m8_lost_epoch(START + datetime.timedelta(seconds=k))
write("tunnel_loss.nmea", loss)

regain = []
for k in range(40, 43):
    lat, lon = position(k)
    regain += m8_fix_epoch(START + datetime.timedelta(seconds=k), lat, lon, SPEED_KN, COURSE, 36.0,
                           sats=7, hdop=1.45)
write("tunnel_regain.nmea", regain)
lat, lon = position(42)
print("tunnel_regain last epoch: lat %.7f lon %.7f" % (lat, lon))

# Proprietary sentences interleaved with a u-blox M8 epoch: u-blox PUBX
# position and time polls, MediaTek start-up notices, SiRF switch command.
prop = []
t = START + datetime.timedelta(seconds=50)
lat, lon = position(50)
epoch = m8_fix_epoch(t, lat, lon, SPEED_KN, COURSE, 34.5)
la, ns = ddmm(lat, False)
lo, ew = ddmm(lon, True)
prop += [s("PMTK011,MTKGPS"), s("PMTK010,001")]
prop += epoch[:3]
prop.append(s("PUBX,00,%s,%s,%s,%s,%s,74.1,G3,2.1,2.0,50.004,87.50,0.000,,0.92,1.37,1.10,9,0,0"
              % (hms(t).replace(".00", ".00"), la, ns, lo, ew)))
prop += epoch[3:]
prop.append(s("PUBX,04,%s,%s,%s,468900.00,2343,18,-123456,21.5,21" % (hms(t), dmy(t), "468900.00")))
prop.append(s("PSRF150,1"))
write("proprietary.nmea", prop)

# A noisy UART: flipped bits (checksum errors), a sentence cut short by a
# dropped byte run (no checksum at all), and a good epoch around them.
noisy = []
t = START + datetime.timedelta(seconds=60)
lat, lon = position(60)
epoch = m8_fix_epoch(t, lat, lon, SPEED_KN, COURSE, 34.5)
body = epoch[2][1:epoch[2].index("*")]
noisy.append(bad(body.replace("GNGGA,", "GNGGA,", 1), 0x10))
noisy += epoch[:2]
noisy.append(bad(epoch[3][1:epoch[3].index("*")], 0x04))
noisy.append(epoch[2][:30] + "\r\n")  # truncated: no checksum
noisy += epoch[2:]
noisy.append(bad(epoch[0][1:epoch[0].index("*")], 0x41))
write("checksum_errors.nmea", noisy)

# A NEO-6M with firmware from before the April 2019 week-number rollover
# reports a date exactly 1024 weeks (7168 days, 19.6 years) in the past.
true_time = START + datetime.timedelta(seconds=70)
rolled = true_time - datetime.timedelta(weeks=1024)
print("week rollover: true %s reported %s" % (true_time.date(), rolled.date()))
lat, lon = position(70)
la, ns = ddmm(lat, False)
lo, ew = ddmm(lon, True)
wk = [
    s("GPRMC,%s,A,%s,%s,%s,%s,%.3f,%.2f,%s,,,A" % (hms(rolled), la, ns, lo, ew, SPEED_KN, COURSE, dmy(rolled))),
    s("GPVTG,%.2f,T,,M,%.3f,N,%.3f,K,A" % (COURSE, SPEED_KN, SPEED_KN * 1.852)),
    s("GPGGA,%s,%s,%s,%s,%s,1,08,1.01,34.5,M,39.9,M,," % (hms(rolled), la, ns, lo, ew)),
    s("GPGSA,A,3,05,13,15,18,20,29,23,27,,,,,1.80,1.01,1.49"),
] + gsv("GP", GPS_SV)
write("week_rollover.nmea", wk)

# What a 9600 baud receiver looks like read at the wrong rate: bytes without
# structure. Fixed seed so the file never changes.
rng = random.Random(1024)
with open(os.path.join(HERE, "baud_garbage.bin"), "wb") as f:
    f.write(bytes(rng.randrange(256) for _ in range(2048)))
