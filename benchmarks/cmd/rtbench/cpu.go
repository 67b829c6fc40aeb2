package main

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// The broker, the server and this client share one small machine, so a
// phase's figure means little without knowing who used the CPU. cpuSampler
// reads, from /proc (Linux only; elsewhere the figures stay zero), the CPU
// time of the server process, of the Kafka broker (found by its main class),
// of this process, and of the whole machine, at the start and end of a phase.
type cpuSampler struct {
	serverPid, brokerPid int
	start                time.Time
	server, broker, self time.Duration
	busy, total          int64 // machine jiffies
}

// clockTick is USER_HZ, 100 on every Linux platform Go supports.
const clockTick = 100

func startCPU(serverPid, brokerPid int) *cpuSampler {
	s := &cpuSampler{serverPid: serverPid, brokerPid: brokerPid}
	s.sample()
	return s
}

func (s *cpuSampler) sample() {
	s.start = time.Now()
	s.server = procCPU(s.serverPid)
	s.broker = procCPU(s.brokerPid)
	s.self = selfCPU()
	s.busy, s.total = machineCPU()
}

// stop returns the average number of cores each part used since start.
func (s *cpuSampler) stop() CPUUsage {
	wall := time.Since(s.start)
	server, broker, self := procCPU(s.serverPid), procCPU(s.brokerPid), selfCPU()
	busy, total := machineCPU()
	u := CPUUsage{Seconds: wall.Seconds(), Cores: numCPU()}
	if wall <= 0 {
		return u
	}
	cores := func(d time.Duration) float64 { return d.Seconds() / wall.Seconds() }
	u.Server = cores(server - s.server)
	u.Bench = cores(self - s.self)
	if s.brokerPid > 0 {
		u.Broker = cores(broker - s.broker)
	}
	if dt := total - s.total; dt > 0 {
		u.MachineBusy = float64(busy-s.busy) / float64(dt) * float64(u.Cores)
		u.Other = max(0, u.MachineBusy-u.Server-u.Bench-u.Broker)
	}
	return u
}

func (u CPUUsage) String() string {
	return fmt.Sprintf("server %.2f, broker %.2f, rtbench %.2f, other %.2f, machine busy %.2f of %d cores",
		u.Server, u.Broker, u.Bench, u.Other, u.MachineBusy, u.Cores)
}

// procCPU is a process's user+system CPU time from /proc/<pid>/stat.
func procCPU(pid int) time.Duration {
	if pid <= 0 {
		return 0
	}
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// Fields after the command name, which may contain spaces, start at
	// the last ')'; utime and stime are fields 14 and 15 of the line.
	i := bytes.LastIndexByte(data, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(data[i+1:]))
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * time.Second / clockTick
}

func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// machineCPU returns busy and total jiffies of all CPUs from /proc/stat.
func machineCPU() (busy, total int64) {
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0
	}
	line, _, _ := strings.Cut(string(data), "\n")
	f := strings.Fields(line)
	if len(f) < 5 || f[0] != "cpu" {
		return 0, 0
	}
	for i, v := range f[1:] {
		if i >= 8 { // guest time is already counted in user
			break
		}
		n, _ := strconv.ParseInt(v, 10, 64)
		total += n
		if i != 3 && i != 4 { // idle, iowait
			busy += n
		}
	}
	return busy, total
}

func numCPU() int {
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	n := 0
	for _, l := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(l, "cpu") && len(l) > 3 && l[3] >= '0' && l[3] <= '9' {
			n++
		}
	}
	return n
}

// findBroker returns the pid of the local process listening on the first
// broker's port, or 0 when the broker is not on this machine or cannot be
// found. It only reads /proc: the socket's inode from /proc/net/tcp{,6},
// then the process holding that socket.
func findBroker(brokers []string) int {
	if len(brokers) == 0 {
		return 0
	}
	host, portStr, err := net.SplitHostPort(brokers[0])
	if err != nil {
		return 0
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return 0
	}
	port, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil {
		return 0
	}
	inodes := map[string]bool{}
	for _, table := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		data, err := os.ReadFile(table)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(data), "\n")[1:] {
			f := strings.Fields(line)
			// local_address is HEXIP:HEXPORT; state 0A is LISTEN.
			if len(f) < 10 || f[3] != "0A" {
				continue
			}
			_, hexPort, ok := strings.Cut(f[1], ":")
			if p, err := strconv.ParseUint(hexPort, 16, 16); ok && err == nil && p == port {
				inodes["socket:["+f[9]+"]"] = true
			}
		}
	}
	if len(inodes) == 0 {
		return 0
	}
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		fds, _ := filepath.Glob(filepath.Join(d, "fd", "*"))
		for _, fd := range fds {
			if link, err := os.Readlink(fd); err == nil && inodes[link] {
				pid, _ := strconv.Atoi(filepath.Base(d))
				return pid
			}
		}
	}
	return 0
}
