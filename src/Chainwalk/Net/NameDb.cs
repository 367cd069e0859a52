using System.Globalization;

namespace Chainwalk.Net;

/// <summary>
/// The name databases iptables consults through libc: /etc/services, /etc/protocols, /etc/hosts and
/// /etc/networks. Only the files are read, never DNS, so listing and parsing stay offline and fast.
/// </summary>
public sealed class NameDb
{
    private readonly Dictionary<(string Name, string Proto), int> _serviceByName = new();
    private readonly Dictionary<(int Port, string Proto), string> _serviceByPort = new();
    private readonly Dictionary<string, int> _protoByName = new(StringComparer.Ordinal);
    private readonly Dictionary<int, string> _protoByNumber = new();
    private readonly List<(string Name, IpFamily Family, UInt128 Address)> _hosts = new();
    private readonly Dictionary<uint, string> _networksByAddress = new();
    private readonly Dictionary<string, uint> _networksByName = new(StringComparer.Ordinal);

    private readonly Dictionary<string, uint> _userByName = new(StringComparer.Ordinal);
    private readonly Dictionary<uint, string> _userById = new();
    private readonly Dictionary<string, uint> _groupByName = new(StringComparer.Ordinal);
    private readonly Dictionary<uint, string> _groupById = new();

    private static NameDb? _system;

    /// <summary>The databases of this machine (or of $CHAINWALK_ETC when set), read once per process.</summary>
    public static NameDb System => _system ??= Load(Environment.GetEnvironmentVariable("CHAINWALK_ETC") is { Length: > 0 } etc ? etc : "/etc");

    [ThreadStatic]
    private static NameDb? _printing;

    /// <summary>
    /// The databases the listing being written uses (set by the -L writer around each rule so that an
    /// extension's list form resolves names the same way as the rest of the line); <see cref="System"/> otherwise.
    /// </summary>
    public static NameDb Printing => _printing ?? System;

    /// <summary>Makes <paramref name="names"/> the <see cref="Printing"/> databases until the returned scope is disposed.</summary>
    public static PrintingScope UseForPrinting(NameDb names)
    {
        NameDb? previous = _printing;
        _printing = names;
        return new PrintingScope(previous);
    }

    /// <summary>Restores the previous <see cref="Printing"/> databases.</summary>
    public readonly struct PrintingScope(NameDb? previous) : IDisposable
    {
        public void Dispose() => _printing = previous;
    }

    /// <summary>
    /// The databases of <paramref name="etcDirectory"/>. Each file is read when first consulted (a restore of numeric
    /// rules reads none of them), as libc opens /etc/services only when getservbyname runs.
    /// </summary>
    public static NameDb Load(string etcDirectory) => new(etcDirectory);

    private NameDb(string etcDirectory) => _etc = etcDirectory;

    private readonly string _etc;

    /// <summary>The files read so far (Databases flags), set after the file's entries are in place.</summary>
    private volatile int _loaded;

    [Flags]
    private enum Databases { Services = 1, Protocols = 2, Hosts = 4, Networks = 8, Ids = 16 }

    private void Ensure(Databases which)
    {
        if ((_loaded & (int)which) != 0) return;
        lock (_serviceByName)
        {
            if ((_loaded & (int)which) != 0) return;
            switch (which)
            {
                case Databases.Services: LoadServices(Path.Combine(_etc, "services")); break;
                case Databases.Protocols: LoadProtocols(Path.Combine(_etc, "protocols")); break;
                case Databases.Hosts: LoadHosts(Path.Combine(_etc, "hosts")); break;
                case Databases.Networks: LoadNetworks(Path.Combine(_etc, "networks")); break;
                case Databases.Ids:
                    LoadIds(Path.Combine(_etc, "passwd"), _userByName, _userById);
                    LoadIds(Path.Combine(_etc, "group"), _groupByName, _groupById);
                    break;
            }
            _loaded |= (int)which;
        }
    }

    private static IEnumerable<string[]> Lines(string path)
    {
        if (!File.Exists(path)) yield break;
        foreach (string raw in File.ReadLines(path))
        {
            string line = raw;
            int hash = line.IndexOf('#', StringComparison.Ordinal);
            if (hash >= 0) line = line[..hash];
            string[] f = line.Split([' ', '\t'], StringSplitOptions.RemoveEmptyEntries);
            if (f.Length > 0) yield return f;
        }
    }

    private void LoadServices(string path)
    {
        foreach (string[] f in Lines(path))
        {
            if (f.Length < 2) continue;
            int slash = f[1].IndexOf('/', StringComparison.Ordinal);
            if (slash < 0 || !int.TryParse(f[1].AsSpan(0, slash), NumberStyles.None, CultureInfo.InvariantCulture, out int port)) continue;
            string proto = f[1][(slash + 1)..];
            _serviceByPort.TryAdd((port, proto), f[0]);
            for (int i = 0; i < f.Length; i++)
            {
                if (i == 1) continue;
                _serviceByName.TryAdd((f[i], proto), port);
            }
        }
    }

    private void LoadIds(string path, Dictionary<string, uint> byName, Dictionary<uint, string> byId)
    {
        if (!File.Exists(path)) return;
        foreach (string line in File.ReadLines(path))
        {
            string[] f = line.Split(':');
            if (f.Length < 3 || !uint.TryParse(f[2], NumberStyles.None, CultureInfo.InvariantCulture, out uint id)) continue;
            byName.TryAdd(f[0], id);
            byId.TryAdd(id, f[0]);
        }
    }

    /// <summary>getpwnam: the uid of a user name.</summary>
    public bool TryGetUserId(string name, out uint uid)
    {
        Ensure(Databases.Ids);
        return _userByName.TryGetValue(name, out uid);
    }

    /// <summary>getpwuid: the name of a uid, or null.</summary>
    public string? UserName(uint uid)
    {
        Ensure(Databases.Ids);
        return _userById.TryGetValue(uid, out string? n) ? n : null;
    }

    /// <summary>getgrnam: the gid of a group name.</summary>
    public bool TryGetGroupId(string name, out uint gid)
    {
        Ensure(Databases.Ids);
        return _groupByName.TryGetValue(name, out gid);
    }

    /// <summary>getgrgid: the name of a gid, or null.</summary>
    public string? GroupName(uint gid)
    {
        Ensure(Databases.Ids);
        return _groupById.TryGetValue(gid, out string? n) ? n : null;
    }

    private void LoadProtocols(string path)
    {
        foreach (string[] f in Lines(path))
        {
            if (f.Length < 2 || !int.TryParse(f[1], NumberStyles.None, CultureInfo.InvariantCulture, out int num)) continue;
            _protoByNumber.TryAdd(num, f[0]);
            _protoByName.TryAdd(f[0], num);
            for (int i = 2; i < f.Length; i++) _protoByName.TryAdd(f[i], num);
        }
    }

    private void LoadHosts(string path)
    {
        foreach (string[] f in Lines(path))
        {
            if (f.Length < 2) continue;
            IpFamily family;
            UInt128 addr;
            if (IpNet.TryParseStrict(f[0], IpFamily.V4, out addr)) family = IpFamily.V4;
            else if (IpNet.TryParseV6Numeric(f[0], out addr)) family = IpFamily.V6;
            else continue;
            for (int i = 1; i < f.Length; i++) _hosts.Add((f[i], family, addr));
        }
    }

    private void LoadNetworks(string path)
    {
        foreach (string[] f in Lines(path))
        {
            if (f.Length < 2 || !IpNet.TryParseV4Numeric(f[1], false, out uint net)) continue;
            _networksByAddress.TryAdd(net, f[0]);
            _networksByName.TryAdd(f[0], net);
        }
    }

    /// <summary>getservbyname(name, proto).</summary>
    public bool TryGetServicePort(string name, string proto, out int port)
    {
        Ensure(Databases.Services);
        return _serviceByName.TryGetValue((name, proto), out port);
    }

    /// <summary>getservbyport(port, proto).</summary>
    public string? ServiceName(int port, string proto)
    {
        Ensure(Databases.Services);
        return _serviceByPort.TryGetValue((port, proto), out string? n) ? n : null;
    }

    /// <summary>getprotobyname.</summary>
    public bool TryGetProtocolNumber(string name, out int number)
    {
        Ensure(Databases.Protocols);
        return _protoByName.TryGetValue(name, out number);
    }

    /// <summary>getprotobynumber: the official name.</summary>
    public string? ProtocolName(int number)
    {
        Ensure(Databases.Protocols);
        return _protoByNumber.TryGetValue(number, out string? n) ? n : null;
    }

    /// <summary>Addresses of a host name in /etc/hosts for one family, in file order.</summary>
    public IReadOnlyList<UInt128> HostAddresses(string name, IpFamily family)
    {
        Ensure(Databases.Hosts);
        var list = new List<UInt128>();
        foreach (var h in _hosts)
        {
            if (h.Family == family && string.Equals(h.Name, name, StringComparison.OrdinalIgnoreCase) && !list.Contains(h.Address)) list.Add(h.Address);
        }
        return list;
    }

    /// <summary>The first host name of an address (gethostbyaddr on /etc/hosts), or null.</summary>
    public string? HostName(UInt128 address, IpFamily family)
    {
        Ensure(Databases.Hosts);
        foreach (var h in _hosts)
        {
            if (h.Family == family && h.Address == address) return h.Name;
        }
        return null;
    }

    /// <summary>getnetbyaddr: the name of an IPv4 network address, or null.</summary>
    public string? NetworkName(uint address)
    {
        // getnetbyaddr takes the network in host order with trailing zero octets dropped, and /etc/networks
        // lists them the same way, so matching the full address against the parsed entry is equivalent.
        Ensure(Databases.Networks);
        return _networksByAddress.TryGetValue(address, out string? n) ? n : null;
    }

    public bool TryGetNetwork(string name, out uint address)
    {
        Ensure(Databases.Networks);
        return _networksByName.TryGetValue(name, out address);
    }
}
