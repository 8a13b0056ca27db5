# -*- coding: utf-8 -*-
'''An emulated BlueZ (bluetoothd) for edgeward's integration tests.

Load it with python-dbusmock on a private system bus:

    DBUS_SYSTEM_BUS_ADDRESS=unix:path=... \
        /usr/bin/python3 -m dbusmock --template tests/bluez/edgeward_bluez.py

It owns `org.bluez` and serves what a BlueZ client (bluer) reads and calls:
`GetManagedObjects` on `/`, `org.bluez.Adapter1`, `org.bluez.Device1`,
`org.bluez.GattService1` and `org.bluez.GattCharacteristic1` objects at the
paths bluetoothd uses, with the D-Bus types bluetoothd uses, and the signals
a client subscribes to (InterfacesAdded/Removed, PropertiesChanged).

The test drives the radio side through `org.bluez.Mock` methods on `/`:

    AddAdapter(s name) -> s path       an adapter, powered
    RemoveAdapter(s name)              unplugged: its devices, then itself, vanish
    SetPowered(s name, b on)           powering off stops discovery, drops links
    Advertise(s adapter, s address, s name, n rssi, a{say} service_data) -> b heard
                                       one advertisement; heard only while the
                                       adapter discovers (a new device appears
                                       with InterfacesAdded, a known one gets
                                       RSSI and ServiceData in one PropertiesChanged)
    AddGattService(s address, s service_uuid, as characteristic_uuids)
                                       the sensor's GATT database, resolved on connect
    FailConnects(s address, u count)   the next `count` Connect calls fail
    ConnectAttempts(s address) -> u    Connect calls so far, failed ones included
    Notify(s adapter, s address, s characteristic_uuid, ay value) -> b delivered
                                       a notification; delivered only while the
                                       link is up and a client called StartNotify
    DropConnection(s adapter, s address) -> b
                                       link loss, as when the sensor walks away
    DiscoveryStarts(s adapter) -> u    how often discovery went from off to on
    DiscoveryFilter(s adapter) -> a{sv}  the last filter a client set
    SetMonitorSupport(s adapter, b on) the adapter offers advertisement monitors
                                       (org.bluez.AdvertisementMonitorManager1,
                                       or_patterns), now and when plugged in
                                       again; off by default, as in a BlueZ
                                       without them
    ActiveMonitors(s adapter) -> u     monitors registered and activated

Advertisement monitors: RegisterMonitor(o root) takes a client's object
tree; its org.bluez.AdvertisementMonitor1 objects (found with
GetManagedObjects on the root and from its InterfacesAdded) are activated.
An advertisement whose service data matches an active monitor's or_patterns
(AD type 0x16: the 16-bit UUID little-endian, then the data) is heard
without a discovery: the device appears or changes as above, and the
monitor's DeviceFound is called once per device object. Only AD type 0x16
is matched (the test's advertisements carry nothing else); DeviceLost and
RSSI thresholds are not emulated.

What bluetoothd does and this does too: discovery is per client (it stops
when the last client stops it or leaves the bus, and then the devices'
RSSI is invalidated: not known to be in range); Connect on a connected
device fails with AlreadyConnected; services resolve after Connect returns
(Connected, then GATT objects, then ServicesResolved); a disconnect removes
the GATT objects of an unpaired device; notify sessions end when their client
leaves the bus; a missing optional property reads as InvalidArgs.

What it does not do: real timing, RSSI thresholds, whether bluetoothd
re-emits unchanged ServiceData, AcquireNotify (refused as NotSupported),
pairing, BR/EDR.
'''

import dbus
import dbus.service
from gi.repository import GLib

from dbusmock import OBJECT_MANAGER_IFACE, mockobject

BUS_NAME = 'org.bluez'
MAIN_OBJ = '/'
SYSTEM_BUS = True
IS_OBJECT_MANAGER = True

MOCK_IFACE = 'org.bluez.Mock'
AGENT_MANAGER_IFACE = 'org.bluez.AgentManager1'
ADAPTER_IFACE = 'org.bluez.Adapter1'
DEVICE_IFACE = 'org.bluez.Device1'
SERVICE_IFACE = 'org.bluez.GattService1'
CHAR_IFACE = 'org.bluez.GattCharacteristic1'
MONITOR_MANAGER_IFACE = 'org.bluez.AdvertisementMonitorManager1'
MONITOR_IFACE = 'org.bluez.AdvertisementMonitor1'
AD_SERVICE_DATA_16 = 0x16
PROPS_IFACE = dbus.PROPERTIES_IFACE

# How long after Connect returns the services resolve, like a real GATT discovery.
RESOLVE_MS = 30

# The radio side, which outlives D-Bus objects (an adapter can be unplugged
# and plugged in again; the sensors stay the same): per sensor address.
SENSORS = {}
# Per adapter name: discovery clients, their filters, starts.
DISCOVERY = {}
# Adapter names that offer advertisement monitors.
MONITOR_SUPPORT = set()
# Per adapter name: registered monitor applications by (client, root path),
# each {'client', 'monitors': {path: {'patterns', 'active', 'found'}}, 'match'}.
MONITOR_APPS = {}


def _sensor(address):
    return SENSORS.setdefault(address.upper(), {'gatt': [], 'fail_connects': 0, 'connect_attempts': 0})


def _discovery(adapter):
    return DISCOVERY.setdefault(adapter, {'clients': set(), 'filters': {}, 'last_filter': {}, 'starts': 0})


def _error(name, message):
    return dbus.exceptions.DBusException(message, name='org.bluez.Error.' + name)


def _adapter_path(name):
    return '/org/bluez/' + name


def _device_path(adapter, address):
    return _adapter_path(adapter) + '/dev_' + address.upper().replace(':', '_')


def _manager():
    return mockobject.objects['/']


def _bus():
    return _manager().connection


def _object(path):
    return mockobject.objects.get(path)


def _export(obj, *functions):
    '''Serve `functions` (dbus.service.method-decorated) on `obj` only.

    dbusmock looks methods up per object first, and calling the decorated
    function directly keeps dbus-python's keywords (sender, path), which
    dbusmock's own AddMethods drops.
    '''
    for fn in functions:
        # pylint: disable=protected-access
        obj.methods.setdefault(fn._dbus_interface, {})[fn.__name__] = (
            fn._dbus_in_signature, fn._dbus_out_signature, '', fn)


@dbus.service.method(PROPS_IFACE, in_signature='ss', out_signature='v')
def Get(obj, interface, name):
    '''Properties.Get as bluetoothd answers it: InvalidArgs for a missing
    property (bluer reads an optional property's absence from that).'''
    try:
        return obj.props[interface or obj.interface][name]
    except KeyError as e:
        raise dbus.exceptions.DBusException(
            f'No such property {name!r}', name='org.freedesktop.DBus.Error.InvalidArgs') from e


def _add(path, interface, props, *methods):
    '''Create an object and announce it with InterfacesAdded.'''
    _manager().AddObject(path, interface, props, [])
    obj = mockobject.objects[path]
    _export(obj, Get, *methods)
    _manager().EmitSignal(OBJECT_MANAGER_IFACE, 'InterfacesAdded', 'oa{sa{sv}}', [
        dbus.ObjectPath(path), {interface: props}])
    return obj


def _remove(path):
    '''Remove an object and everything below it, deepest first, each with InterfacesRemoved.'''
    below = sorted((p for p in mockobject.objects if p.startswith(path + '/')), key=len, reverse=True)
    for p in below + [path]:
        obj = mockobject.objects.get(p)
        if obj is None:
            continue
        interfaces = [i for i in obj.props if i]
        for apps in MONITOR_APPS.values():
            for app in apps.values():
                for monitor in app['monitors'].values():
                    monitor['found'].discard(p)
        _manager().RemoveObject(p)
        _manager().EmitSignal(OBJECT_MANAGER_IFACE, 'InterfacesRemoved', 'oas', [
            dbus.ObjectPath(p), dbus.Array(interfaces, signature='s')])


def _change(obj, interface, changes):
    '''Set properties and emit them as one PropertiesChanged, as bluetoothd batches them.'''
    for name, value in changes.items():
        obj.props[interface][name] = value
    obj.EmitSignal(PROPS_IFACE, 'PropertiesChanged', 'sa{sv}as', [
        interface, dbus.Dictionary(changes, signature='sv'), dbus.Array([], signature='s')])


def _watch_client(sender, on_gone):
    '''Call `on_gone()` once when the bus client `sender` disconnects.'''
    state = {}

    def owner_changed(owner):
        if owner == '' and 'done' not in state:
            state['done'] = True
            on_gone()
            match = state.pop('match', None)
            if match is not None:
                match.cancel()

    state['match'] = _bus().watch_name_owner(sender, owner_changed)


def _service_data(data):
    '''a{say} from the test into bluetoothd's a{sv} with byte-array values.'''
    return dbus.Dictionary(
        {dbus.String(uuid): dbus.Array([dbus.Byte(b) for b in value], signature='y', variant_level=1)
         for uuid, value in data.items()},
        signature='sv', variant_level=1)


def load(mock, _parameters):
    mock.AddObject('/org/bluez', AGENT_MANAGER_IFACE, {}, [
        ('RegisterAgent', 'os', '', ''),
        ('RequestDefaultAgent', 'o', '', ''),
        ('UnregisterAgent', 'o', '', ''),
    ])


# ---------------------------------------------------------------------------
# Adapter1

@dbus.service.method(ADAPTER_IFACE, in_signature='a{sv}', out_signature='', sender_keyword='sender')
def SetDiscoveryFilter(adapter, discovery_filter, sender=None):
    known = {'UUIDs', 'RSSI', 'Pathloss', 'Transport', 'DuplicateData', 'Discoverable', 'Pattern'}
    unknown = set(discovery_filter) - known
    if unknown:
        raise _error('InvalidArguments', f'unknown discovery filter keys {sorted(unknown)}')
    state = _discovery(adapter.adapter_name)
    state['filters'][sender] = discovery_filter
    state['last_filter'] = discovery_filter


@dbus.service.method(ADAPTER_IFACE, in_signature='', out_signature='', sender_keyword='sender')
def StartDiscovery(adapter, sender=None):
    if not adapter.props[ADAPTER_IFACE]['Powered']:
        raise _error('NotReady', 'Resource Not Ready')
    state = _discovery(adapter.adapter_name)
    if sender in state['clients']:
        raise _error('InProgress', 'Operation already in progress')
    first = not state['clients']
    state['clients'].add(sender)
    name = adapter.adapter_name

    def gone():
        if _object(_adapter_path(name)) is adapter:
            _stop_discovery(adapter, sender)

    _watch_client(sender, gone)
    if first:
        state['starts'] += 1
        _change(adapter, ADAPTER_IFACE, {'Discovering': dbus.Boolean(True, variant_level=1)})


def _stop_discovery(adapter, client):
    state = _discovery(adapter.adapter_name)
    state['clients'].discard(client)
    state['filters'].pop(client, None)
    if not state['clients'] and adapter.props[ADAPTER_IFACE]['Discovering']:
        _change(adapter, ADAPTER_IFACE, {'Discovering': dbus.Boolean(False, variant_level=1)})
        _forget_rssi(adapter)


def _forget_rssi(adapter):
    '''bluetoothd invalidates the RSSI of the devices it found when discovery
    stops: a remembered device without RSSI is one not known to be in range.'''
    for path in [p for p in mockobject.objects if p.startswith(adapter.path + '/dev_') and p.count('/') == 4]:
        device = mockobject.objects[path]
        if device.props[DEVICE_IFACE].pop('RSSI', None) is not None:
            device.EmitSignal(PROPS_IFACE, 'PropertiesChanged', 'sa{sv}as', [
                DEVICE_IFACE, dbus.Dictionary({}, signature='sv'), dbus.Array(['RSSI'], signature='s')])


@dbus.service.method(ADAPTER_IFACE, in_signature='', out_signature='', sender_keyword='sender')
def StopDiscovery(adapter, sender=None):
    if sender not in _discovery(adapter.adapter_name)['clients']:
        raise _error('Failed', 'No discovery started')
    _stop_discovery(adapter, sender)


@dbus.service.method(ADAPTER_IFACE, in_signature='o', out_signature='')
def RemoveDevice(adapter, path):
    if not str(path).startswith(adapter.path + '/dev_') or _object(path) is None:
        raise _error('DoesNotExist', 'Does Not Exist')
    _remove(str(path))


@dbus.service.method(ADAPTER_IFACE, in_signature='', out_signature='as')
def GetDiscoveryFilters(_adapter):
    return ['UUIDs', 'RSSI', 'Pathloss', 'Transport', 'DuplicateData', 'Discoverable', 'Pattern']


@dbus.service.method(MOCK_IFACE, in_signature='s', out_signature='s')
def AddAdapter(_self, name):
    path = _adapter_path(name)
    if _object(path) is not None:
        raise _error('AlreadyExists', f'adapter {name} exists')
    index = int(''.join(c for c in name if c.isdigit()) or 0)
    props = {
        'Address': dbus.String(f'00:1A:7D:DA:71:{index:02X}', variant_level=1),
        'AddressType': dbus.String('public', variant_level=1),
        'Name': dbus.String('edgeward-test', variant_level=1),
        'Alias': dbus.String('edgeward-test', variant_level=1),
        'Class': dbus.UInt32(0, variant_level=1),
        'Powered': dbus.Boolean(True, variant_level=1),
        'PowerState': dbus.String('on', variant_level=1),
        'Discoverable': dbus.Boolean(False, variant_level=1),
        'DiscoverableTimeout': dbus.UInt32(180, variant_level=1),
        'Pairable': dbus.Boolean(False, variant_level=1),
        'PairableTimeout': dbus.UInt32(0, variant_level=1),
        'Discovering': dbus.Boolean(False, variant_level=1),
        'UUIDs': dbus.Array(['00001800-0000-1000-8000-00805f9b34fb',
                             '00001801-0000-1000-8000-00805f9b34fb'], signature='s', variant_level=1),
        'Modalias': dbus.String('usb:v1D6Bp0246d0548', variant_level=1),
        'Roles': dbus.Array(['central', 'peripheral'], signature='s', variant_level=1),
    }
    adapter = _add(path, ADAPTER_IFACE, props,
                   SetDiscoveryFilter, StartDiscovery, StopDiscovery, RemoveDevice, GetDiscoveryFilters)
    adapter.adapter_name = name
    if name in MONITOR_SUPPORT:
        _offer_monitors(adapter)
    # A new adapter (or one plugged in again) starts without discovery clients.
    state = _discovery(name)
    state['clients'] = set()
    state['filters'] = {}
    return path


@dbus.service.method(MOCK_IFACE, in_signature='s', out_signature='')
def RemoveAdapter(_self, name):
    path = _adapter_path(name)
    if _object(path) is None:
        raise _error('DoesNotExist', f'no adapter {name}')
    _remove(path)
    _discovery(name)['clients'] = set()
    # The monitor manager goes with its adapter, and the registrations with it.
    for key in list(MONITOR_APPS.get(name, {})):
        _drop_monitor_app(name, key)


@dbus.service.method(MOCK_IFACE, in_signature='sb', out_signature='')
def SetPowered(_self, name, on):
    adapter = _object(_adapter_path(name))
    if adapter is None:
        raise _error('DoesNotExist', f'no adapter {name}')
    if not on:
        for client in list(_discovery(name)['clients']):
            _stop_discovery(adapter, client)
        for path in [p for p in mockobject.objects if p.startswith(adapter.path + '/dev_') and p.count('/') == 4]:
            device = mockobject.objects[path]
            if device.props[DEVICE_IFACE]['Connected']:
                _disconnect(device)
    _change(adapter, ADAPTER_IFACE, {
        'Powered': dbus.Boolean(bool(on), variant_level=1),
        'PowerState': dbus.String('on' if on else 'off', variant_level=1),
    })


@dbus.service.method(MOCK_IFACE, in_signature='s', out_signature='u')
def DiscoveryStarts(_self, name):
    return dbus.UInt32(_discovery(name)['starts'])


@dbus.service.method(MOCK_IFACE, in_signature='s', out_signature='a{sv}')
def DiscoveryFilter(_self, name):
    return dbus.Dictionary(_discovery(name)['last_filter'], signature='sv')


# ---------------------------------------------------------------------------
# AdvertisementMonitorManager1 (on the adapter) and the clients' monitors

def _offer_monitors(adapter):
    adapter.props[MONITOR_MANAGER_IFACE] = {
        'SupportedMonitorTypes': dbus.Array(['or_patterns'], signature='s', variant_level=1),
        'SupportedFeatures': dbus.Array([], signature='s', variant_level=1),
    }
    _export(adapter, RegisterMonitor, UnregisterMonitor)
    _manager().EmitSignal(OBJECT_MANAGER_IFACE, 'InterfacesAdded', 'oa{sa{sv}}', [
        dbus.ObjectPath(adapter.path), {MONITOR_MANAGER_IFACE: adapter.props[MONITOR_MANAGER_IFACE]}])


def _withdraw_monitors(adapter):
    if adapter.props.pop(MONITOR_MANAGER_IFACE, None) is None:
        return
    adapter.methods.pop(MONITOR_MANAGER_IFACE, None)
    for key in list(MONITOR_APPS.get(adapter.adapter_name, {})):
        _drop_monitor_app(adapter.adapter_name, key)
    _manager().EmitSignal(OBJECT_MANAGER_IFACE, 'InterfacesRemoved', 'oas', [
        dbus.ObjectPath(adapter.path), dbus.Array([MONITOR_MANAGER_IFACE], signature='s')])


def _drop_monitor_app(adapter_name, key):
    app = MONITOR_APPS.get(adapter_name, {}).pop(key, None)
    if app is not None and app.get('match') is not None:
        app['match'].remove()


def _ignore_reply(*_args):
    pass


def _take_monitor(adapter_name, key, path, props):
    '''A client's monitor object appeared: check it and activate it.'''
    app = MONITOR_APPS.get(adapter_name, {}).get(key)
    if app is None or path in app['monitors']:
        return
    if str(props.get('Type', '')) != 'or_patterns' or not props.get('Patterns'):
        _bus().call_async(app['client'], path, MONITOR_IFACE, 'Release', '', (),
                          reply_handler=_ignore_reply, error_handler=_ignore_reply)
        return
    patterns = [(int(start), int(ad_type), bytes(bytearray(content)))
                for start, ad_type, content in props['Patterns']]
    app['monitors'][path] = {'patterns': patterns, 'active': False, 'found': set()}

    def activated(*_args):
        monitor = app['monitors'].get(path)
        if monitor is not None:
            monitor['active'] = True

    _bus().call_async(app['client'], path, MONITOR_IFACE, 'Activate', '', (),
                      reply_handler=activated, error_handler=_ignore_reply)


@dbus.service.method(MONITOR_MANAGER_IFACE, in_signature='o', out_signature='', sender_keyword='sender')
def RegisterMonitor(adapter, root, sender=None):
    name = adapter.adapter_name
    root = str(root)
    key = (sender, root)
    apps = MONITOR_APPS.setdefault(name, {})
    if key in apps:
        raise _error('AlreadyExists', 'Already Exists')
    app = {'client': sender, 'monitors': {}}
    apps[key] = app

    def added(path, interfaces):
        if MONITOR_IFACE in interfaces and str(path).startswith(root + '/'):
            _take_monitor(name, key, str(path), interfaces[MONITOR_IFACE])

    def removed(path, interfaces):
        if MONITOR_IFACE in interfaces:
            app['monitors'].pop(str(path), None)

    matches = [
        _bus().add_signal_receiver(added, 'InterfacesAdded', OBJECT_MANAGER_IFACE, sender, root),
        _bus().add_signal_receiver(removed, 'InterfacesRemoved', OBJECT_MANAGER_IFACE, sender, root),
    ]

    class Matches:  # pylint: disable=too-few-public-methods
        @staticmethod
        def remove():
            for match in matches:
                match.remove()

    app['match'] = Matches

    def managed(objects):
        for path, interfaces in objects.items():
            if MONITOR_IFACE in interfaces:
                _take_monitor(name, key, str(path), interfaces[MONITOR_IFACE])

    # Monitors exported before registering are found by asking the root, after this reply.
    GLib.idle_add(lambda: _bus().call_async(
        sender, root, OBJECT_MANAGER_IFACE, 'GetManagedObjects', '', (),
        reply_handler=managed, error_handler=_ignore_reply) and False)
    _watch_client(sender, lambda: _drop_monitor_app(name, key))


@dbus.service.method(MONITOR_MANAGER_IFACE, in_signature='o', out_signature='', sender_keyword='sender')
def UnregisterMonitor(adapter, root, sender=None):
    key = (sender, str(root))
    if key not in MONITOR_APPS.get(adapter.adapter_name, {}):
        raise _error('DoesNotExist', 'Does Not Exist')
    _drop_monitor_app(adapter.adapter_name, key)


def _ad_structures(service_data):
    '''The advertisement's AD structures (type, data) for `service_data`.'''
    out = []
    for uuid, value in service_data.items():
        uuid = str(uuid).lower()
        if uuid.endswith('-0000-1000-8000-00805f9b34fb') and uuid.startswith('0000'):
            short = int(uuid[4:8], 16)
            out.append((AD_SERVICE_DATA_16, bytes([short & 0xff, short >> 8]) + bytes(bytearray(value))))
    return out


def _matching_monitors(adapter_name, service_data):
    '''The active monitors one of whose patterns matches the advertisement.'''
    structures = _ad_structures(service_data)
    found = []
    for app in MONITOR_APPS.get(adapter_name, {}).values():
        for path, monitor in app['monitors'].items():
            if monitor['active'] and any(
                    ad_type == kind and data[start:start + len(content)] == content
                    for start, ad_type, content in monitor['patterns']
                    for kind, data in structures):
                found.append((app['client'], path, monitor))
    return found


def _report_found(monitors, device_path):
    for client, path, monitor in monitors:
        if device_path not in monitor['found']:
            monitor['found'].add(device_path)
            _bus().call_async(client, path, MONITOR_IFACE, 'DeviceFound', 'o', (dbus.ObjectPath(device_path),),
                              reply_handler=_ignore_reply, error_handler=_ignore_reply)


@dbus.service.method(MOCK_IFACE, in_signature='sb', out_signature='')
def SetMonitorSupport(_self, name, on):
    if on:
        MONITOR_SUPPORT.add(name)
    else:
        MONITOR_SUPPORT.discard(name)
    adapter = _object(_adapter_path(name))
    if adapter is None:
        return
    if on and MONITOR_MANAGER_IFACE not in adapter.props:
        _offer_monitors(adapter)
    elif not on:
        _withdraw_monitors(adapter)


@dbus.service.method(MOCK_IFACE, in_signature='s', out_signature='u')
def ActiveMonitors(_self, name):
    return dbus.UInt32(sum(1 for app in MONITOR_APPS.get(name, {}).values()
                           for monitor in app['monitors'].values() if monitor['active']))


# ---------------------------------------------------------------------------
# Device1 and GATT

@dbus.service.method(DEVICE_IFACE, in_signature='', out_signature='')
def Connect(device):
    sensor = _sensor(str(device.props[DEVICE_IFACE]['Address']))
    sensor['connect_attempts'] += 1
    adapter = _object(str(device.props[DEVICE_IFACE]['Adapter']))
    if adapter is None or not adapter.props[ADAPTER_IFACE]['Powered']:
        raise _error('NotReady', 'Resource Not Ready')
    if device.props[DEVICE_IFACE]['Connected']:
        raise _error('AlreadyConnected', 'Already Connected')
    if sensor['fail_connects'] > 0:
        sensor['fail_connects'] -= 1
        raise _error('Failed', 'le-connection-abort-by-local')
    _change(device, DEVICE_IFACE, {'Connected': dbus.Boolean(True, variant_level=1)})
    # The reply goes out first; discovery of the services follows, as in bluetoothd.
    GLib.timeout_add(RESOLVE_MS, _resolve_services, device)


def _resolve_services(device):
    if _object(device.path) is not device or not device.props[DEVICE_IFACE]['Connected']:
        return False
    sensor = _sensor(str(device.props[DEVICE_IFACE]['Address']))
    handle = 0x000a
    for service_uuid, characteristics in sensor['gatt']:
        service_path = f'{device.path}/service{handle:04x}'
        _add(service_path, SERVICE_IFACE, {
            'UUID': dbus.String(service_uuid, variant_level=1),
            'Device': dbus.ObjectPath(device.path, variant_level=1),
            'Primary': dbus.Boolean(True, variant_level=1),
            'Includes': dbus.Array([], signature='o', variant_level=1),
        })
        handle += 1
        for char_uuid in characteristics:
            char = _add(f'{service_path}/char{handle:04x}', CHAR_IFACE, {
                'UUID': dbus.String(char_uuid, variant_level=1),
                'Service': dbus.ObjectPath(service_path, variant_level=1),
                'Value': dbus.Array([], signature='y', variant_level=1),
                'Notifying': dbus.Boolean(False, variant_level=1),
                'Flags': dbus.Array(['read', 'notify'], signature='s', variant_level=1),
                'MTU': dbus.UInt16(247, variant_level=1),
            }, ReadValue, WriteValue, StartNotify, StopNotify, AcquireNotify)
            char.notify_clients = set()
            handle += 2  # the value and its client configuration descriptor
    _change(device, DEVICE_IFACE, {'ServicesResolved': dbus.Boolean(True, variant_level=1)})
    return False


def _disconnect(device):
    _change(device, DEVICE_IFACE, {'ServicesResolved': dbus.Boolean(False, variant_level=1)})
    _change(device, DEVICE_IFACE, {'Connected': dbus.Boolean(False, variant_level=1)})
    # An unpaired device's GATT objects go with the link.
    for path in sorted((p for p in mockobject.objects if p.startswith(device.path + '/service')),
                       key=len):
        if _object(path) is not None:
            _remove(path)


@dbus.service.method(DEVICE_IFACE, in_signature='', out_signature='')
def Disconnect(device):
    if not device.props[DEVICE_IFACE]['Connected']:
        raise _error('NotConnected', 'Not Connected')
    _disconnect(device)


def _connected_char(char):
    device = _object(str(char.path).rsplit('/', 2)[0])
    if device is None or not device.props[DEVICE_IFACE]['Connected']:
        raise _error('NotConnected', 'Not Connected')


@dbus.service.method(CHAR_IFACE, in_signature='a{sv}', out_signature='ay')
def ReadValue(char, _options):
    _connected_char(char)
    return dbus.Array(char.props[CHAR_IFACE]['Value'], signature='y')


@dbus.service.method(CHAR_IFACE, in_signature='aya{sv}', out_signature='')
def WriteValue(_char, _value, _options):
    raise _error('NotPermitted', 'Write not permitted')


@dbus.service.method(CHAR_IFACE, in_signature='', out_signature='', sender_keyword='sender')
def StartNotify(char, sender=None):
    _connected_char(char)
    if sender in char.notify_clients:
        raise _error('InProgress', 'Notify already started')
    char.notify_clients.add(sender)

    def gone():
        if _object(char.path) is char:
            _stop_notify(char, sender)

    _watch_client(sender, gone)
    if len(char.notify_clients) == 1:
        _change(char, CHAR_IFACE, {'Notifying': dbus.Boolean(True, variant_level=1)})


def _stop_notify(char, client):
    char.notify_clients.discard(client)
    if not char.notify_clients and char.props[CHAR_IFACE]['Notifying']:
        _change(char, CHAR_IFACE, {'Notifying': dbus.Boolean(False, variant_level=1)})


@dbus.service.method(CHAR_IFACE, in_signature='', out_signature='', sender_keyword='sender')
def StopNotify(char, sender=None):
    if sender not in char.notify_clients:
        raise _error('Failed', 'No notify session started')
    _stop_notify(char, sender)


@dbus.service.method(CHAR_IFACE, in_signature='a{sv}', out_signature='hq')
def AcquireNotify(_char, _options):
    raise _error('NotSupported', 'AcquireNotify is not emulated')


@dbus.service.method(MOCK_IFACE, in_signature='sssna{say}', out_signature='b')
def Advertise(_self, adapter_name, address, name, rssi, service_data):
    adapter = _object(_adapter_path(adapter_name))
    if adapter is None or not adapter.props[ADAPTER_IFACE]['Powered']:
        return False
    # Heard by a discovery, or by the controller's passive scan for a monitor.
    monitors = _matching_monitors(adapter_name, service_data)
    if not adapter.props[ADAPTER_IFACE]['Discovering'] and not monitors:
        return False
    address = address.upper()
    path = _device_path(adapter_name, address)
    device = _object(path)
    if device is None:
        props = {
            'Address': dbus.String(address, variant_level=1),
            'AddressType': dbus.String('public', variant_level=1),
            'Alias': dbus.String(name or address.replace(':', '-'), variant_level=1),
            'Paired': dbus.Boolean(False, variant_level=1),
            'Bonded': dbus.Boolean(False, variant_level=1),
            'Trusted': dbus.Boolean(False, variant_level=1),
            'Blocked': dbus.Boolean(False, variant_level=1),
            'LegacyPairing': dbus.Boolean(False, variant_level=1),
            'Connected': dbus.Boolean(False, variant_level=1),
            'ServicesResolved': dbus.Boolean(False, variant_level=1),
            'Adapter': dbus.ObjectPath(adapter.path, variant_level=1),
            'UUIDs': dbus.Array([], signature='s', variant_level=1),
            'AdvertisingFlags': dbus.Array([dbus.Byte(0x06)], signature='y', variant_level=1),
            'RSSI': dbus.Int16(rssi, variant_level=1),
        }
        if name:
            props['Name'] = dbus.String(name, variant_level=1)
        if service_data:
            props['ServiceData'] = _service_data(service_data)
        _add(path, DEVICE_IFACE, props, Connect, Disconnect)
        _report_found(monitors, path)
        return True
    changes = {'RSSI': dbus.Int16(rssi, variant_level=1)}
    if service_data:
        changes['ServiceData'] = _service_data(service_data)
    if name and device.props[DEVICE_IFACE].get('Name') != name:
        changes['Name'] = dbus.String(name, variant_level=1)
        changes['Alias'] = dbus.String(name, variant_level=1)
    _change(device, DEVICE_IFACE, changes)
    _report_found(monitors, path)
    return True


@dbus.service.method(MOCK_IFACE, in_signature='ssas', out_signature='')
def AddGattService(_self, address, service_uuid, characteristic_uuids):
    _sensor(address)['gatt'].append((str(service_uuid), [str(c) for c in characteristic_uuids]))


@dbus.service.method(MOCK_IFACE, in_signature='su', out_signature='')
def FailConnects(_self, address, count):
    _sensor(address)['fail_connects'] = int(count)


@dbus.service.method(MOCK_IFACE, in_signature='s', out_signature='u')
def ConnectAttempts(_self, address):
    return dbus.UInt32(_sensor(address)['connect_attempts'])


@dbus.service.method(MOCK_IFACE, in_signature='sssay', out_signature='b')
def Notify(_self, adapter_name, address, characteristic_uuid, value):
    device_path = _device_path(adapter_name, address)
    device = _object(device_path)
    if device is None or not device.props[DEVICE_IFACE]['Connected']:
        return False
    for path, char in list(mockobject.objects.items()):
        if (path.startswith(device_path + '/service') and CHAR_IFACE in char.props
                and str(char.props[CHAR_IFACE]['UUID']).lower() == characteristic_uuid.lower()):
            if not char.props[CHAR_IFACE]['Notifying']:
                return False
            _change(char, CHAR_IFACE, {
                'Value': dbus.Array([dbus.Byte(b) for b in value], signature='y', variant_level=1)})
            return True
    return False


@dbus.service.method(MOCK_IFACE, in_signature='ss', out_signature='b')
def DropConnection(_self, adapter_name, address):
    device = _object(_device_path(adapter_name, address))
    if device is None or not device.props[DEVICE_IFACE]['Connected']:
        return False
    _disconnect(device)
    return True
